# The Eval wrapper: runs the user's entrypoint REPL-style, as
#     python3 -c <this source> ENTRYPOINT ARGS...
# with fd 3 open on the bootstrap's report file (a memfd), and writes one
# report there: JSON with "result" (repr() of the value of the last top-level
# expression statement, when there is one and it is not None) or, when the
# code raised, "error_type", "error_line" and "error_message".
#
# The wrapper is meant to be invisible to the program: sys.argv, sys.path[0],
# sys.orig_argv and the __main__ module (a fresh one, with __file__,
# __loader__, __builtins__, ... as `python3 ENTRYPOINT` sets them) look as they
# do for `python3 ENTRYPOINT ARGS...`; the code is compiled with its own file
# name, so tracebacks, SyntaxErrors and linecache show the user's file and
# lines; an uncaught exception is printed by sys.excepthook (the program's own
# hook if it set one) with the wrapper's frame cut from the traceback, and the
# interpreter then exits the way it would (1, SystemExit's code, or SIGINT
# for KeyboardInterrupt). What remains visible: the module frame's f_back is
# the wrapper's, /proc/self/cmdline shows `python3 -c <this source> ...`, and
# fd 3 is moved to fd 1000 (close-on-exec; the program's first open() still
# gets fd 3).
#
# The body runs first, then the last expression on its own, so its value is
# computed exactly once. Bounds (docs/api.md): result cut to RESULT_MAX
# characters plus a note (fewer if its JSON escapes would pass REPORT_MAX
# bytes), error_message to MESSAGE_MAX, error_type to TYPE_MAX. Only built-in or C modules are imported (_ast, _json), as by the
# bootstrap: start-up cost is paid on every run.
#
# The report is not a secret channel: the program could write fd 1000 as well,
# which gives it nothing it does not have already (it chooses its last
# expression and what it raises). What it prints never becomes a report.
import sys


def _pyexec_eval():
    import os
    import _ast
    from _json import encode_basestring_ascii as q

    RESULT_MAX = 16384
    MESSAGE_MAX = 2048
    TYPE_MAX = 256
    REPORT_MAX = 65536  # what the bootstrap accepts
    path = sys.argv[1]
    pid = os.getpid()  # a forked child that runs to the end reports nothing
    try:
        report = os.dup2(3, 1000, inheritable=False)
        os.close(3)
    except OSError:
        report = 3
        os.set_inheritable(3, False)

    def cut(text, limit, what):
        if len(text) <= limit:
            return text
        return "%s... [%s cut at %d of %d characters]" % (text[:limit], what, limit, len(text))

    def encode(fields):
        body = "{" + ", ".join(q(k) + ": " + (str(v) if type(v) is int else q(v))
                               for k, v in fields) + "}"
        return body.encode("ascii")

    def write(data):
        if os.getpid() != pid:
            return
        try:
            os.ftruncate(report, 0)
            os.pwrite(report, data, 0)
        except OSError:
            pass

    # As `python3 path`: argv without the wrapper, the script's directory
    # first on sys.path, a fresh __main__ with the attributes a script gets.
    sys.argv = sys.argv[1:]
    if getattr(sys, "orig_argv", None):
        sys.orig_argv = sys.orig_argv[:1] + sys.argv
    full = os.path.abspath(path)
    if sys.path and sys.path[0] == "":
        sys.path[0] = os.path.dirname(os.path.realpath(path))
    main = type(sys)("__main__")
    main.__file__ = full
    main.__cached__ = None
    main.__builtins__ = __builtins__
    loader = sys.modules["_frozen_importlib_external"].SourceFileLoader
    main.__loader__ = loader("__main__", full)
    main.__spec__ = None
    main.__package__ = None
    if "__annotations__" in globals():  # the interpreter gives __main__ one
        main.__annotations__ = {}
    wrapper_globals = globals()
    sys.modules["__main__"] = main

    def user_frames(tb):
        while tb is not None and tb.tb_frame.f_globals is wrapper_globals:
            tb = tb.tb_next
        return tb

    def line_of(e, tb):
        line = 0
        if isinstance(e, SyntaxError) and e.filename == full and e.lineno:
            return e.lineno
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == full:
                line = tb.tb_lineno
            tb = tb.tb_next
        return line

    value = None
    try:
        with open(path, "rb") as f:
            source = f.read()
        tree = compile(source, full, "exec", _ast.PyCF_ONLY_AST, dont_inherit=True)
        last = tree.body[-1] if tree.body and isinstance(tree.body[-1], _ast.Expr) else None
        if last is not None:
            tree.body.pop()
            if not tree.body and isinstance(last.value, _ast.Constant) \
                    and isinstance(last.value.value, str):
                main.__doc__ = last.value.value  # the docstring is the last expression
        code = compile(tree, full, "exec", dont_inherit=True)
        exec(code, main.__dict__)
        if last is not None:
            expr = compile(_ast.Expression(last.value), full, "eval", dont_inherit=True)
            value = eval(expr, main.__dict__)
    except BaseException as e:  # noqa: B036 - everything the program raised
        tb = user_frames(e.__traceback__)
        e.__traceback__ = tb
        code = e.code if isinstance(e, SystemExit) else None
        if not (isinstance(e, SystemExit) and (code is None or code == 0)):
            try:  # a SyntaxError's str() adds the file's base name and line
                message = e.msg if isinstance(e, SyntaxError) else str(e)
            except BaseException as m:  # noqa: B036 - a __str__ that raises
                message = "<str() raised %s>" % type(m).__name__
            name = type(e).__qualname__
            module = type(e).__module__
            if module not in ("builtins", "__main__"):
                name = module + "." + name
            write(encode([("error_type", cut(name, TYPE_MAX, "type")),
                          ("error_line", line_of(e, tb)),
                          ("error_message", cut(message, MESSAGE_MAX, "message"))]))
        if isinstance(e, SystemExit):
            raise
        hook = sys.excepthook

        def excepthook(t, v, _tb, hook=hook, tb=tb):
            sys.excepthook = hook
            v.__traceback__ = tb
            hook(t, v, tb)

        sys.excepthook = excepthook
        raise  # the interpreter prints it through excepthook and exits
    if value is not None:
        try:
            text = repr(value)
            if type(text) is not str:
                raise TypeError("__repr__ returned non-string (type %s)" % type(text).__name__)
        except Exception as e:
            text = "<repr() raised %s: %s>" % (type(e).__name__, e)
        limit = RESULT_MAX
        data = encode([("result", cut(text, limit, "result"))])
        while len(data) > REPORT_MAX:  # escapes: \uXXXX for each non-ASCII one
            limit //= 2
            data = encode([("result", cut(text, limit, "result"))])
        write(data)


_pyexec_eval()

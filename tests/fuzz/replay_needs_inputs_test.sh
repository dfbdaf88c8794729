#!/bin/sh
# replay_main: no input replayed is a failure; one input is a pass.
# Arguments: a replay binary, one input it accepts.
replay=$1
input=$2
empty=$(mktemp -d "${TEST_TMPDIR:-/tmp}/empty.XXXXXX") || exit 1
status=0
if "$replay"; then
    echo "FAIL: passed with no argument"
    status=1
fi
if "$replay" "$empty"; then
    echo "FAIL: passed with an empty directory"
    status=1
fi
if ! "$replay" "$input"; then
    echo "FAIL: $input did not pass"
    status=1
fi
rmdir "$empty"
exit $status

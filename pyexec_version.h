/*
 * The project's version: of pyexecd, libpyexec and the `pyexec` CLI alike.
 * The one place it is written (the Python and Node clients are packaged
 * separately and carry their own). Header only; included by server/base
 * (config.h) and by the client's public header pyexec.h.
 */
#ifndef PYEXEC_VERSION_H
#define PYEXEC_VERSION_H

#define PYEXEC_VERSION "0.1.0"

#endif

#!/bin/sh
# Usage: embed.sh IN OUT. Writes IN as the body of a C string literal, one
# source line per line, escaping backslashes, quotes and '?' (trigraphs).
sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/^/"/' -e 's/$/\\n"/' "$1" > "$2"

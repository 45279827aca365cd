#!/usr/bin/env bash
# bench/code-order.sh: regenerates cli/code-order.txt, the order in which
# release builds lay out the binaries' functions (cli/build.rs), so that
# the code an idle data plane has run sits together: the kernel maps code
# in 64 KB windows around each page fault, and spread over the whole
# binary that code kept nearly all of it resident (docs/PERFORMANCE.md).
#
# It is `bench/proxy.sh --code-order` (see there): the data plane under
# callgrind through proxy.sh's start, config and checks in every protocol,
# then requests, then the functions it ran, hottest first.
#
# Usage:
#   bench/code-order.sh          release build; writes cli/code-order.txt (~1 min)
#   bench/code-order.sh --smoke  CI: debug build, writes to a temp dir only
# Settings: REQUESTS=500, CODE_ORDER_OUT, and proxy.sh's (TURNPIKE_BIN...).
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/proxy.sh" --code-order "$@"

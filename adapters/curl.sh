#!/bin/sh
# mralab adapter (protocol 1): curl, exit codes mapped to verdicts. See curl_adapter.py.
exec python3 "$(dirname "$0")/curl_adapter.py"

#!/bin/sh
# mralab adapter (protocol 1): openssl s_client -verify_return_error. See openssl_adapter.py.
exec python3 "$(dirname "$0")/openssl_adapter.py"

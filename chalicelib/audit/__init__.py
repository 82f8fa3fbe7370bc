"""The audit archive, pure: record shapes and masking, object keys, the Merkle tree, the signed daily
manifest and its offline verification. No IO here (the S3 adapter is ``chalicelib/adapters/archive.py``,
the buffering service ``chalicelib/services/archive.py``); ``docs/finance.md`` describes the formats.
"""

"""Limits shared by the models and the webhook readers, in a module that imports nothing (cheap)."""

#: An id that becomes part of a ledger key (order, refund, event id): DynamoDB's key is at most
#: 2,048 bytes, and an order key holds a store id, a platform and up to two such ids.
MAX_ID_BYTES = 256

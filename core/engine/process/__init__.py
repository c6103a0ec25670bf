"""The engine in a worker process: the worker, its client, and the messages between them."""

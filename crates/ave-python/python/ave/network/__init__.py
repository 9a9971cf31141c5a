"""Networking: framed connections, the RPC server and client, processes, pipes and
descriptor transfer (``ave.network``)."""

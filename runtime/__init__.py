"""Process-level runtime: the embedded MongoDB child process and the shared service clients."""

"""Streams for tests that need big inputs without the memory (archive limits, hostile inputs)."""
import io


class Repeat(io.RawIOBase):
    """``size`` copies of one byte, read like a file: tar members of any size made on the fly."""

    def __init__(self, byte: bytes, size: int):
        self.byte, self.left = byte, size

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self.left)
        b[:n] = self.byte * n
        self.left -= n
        return n

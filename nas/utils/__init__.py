"""Small helpers shared across subpackages (atomic file writes)."""

from nas.utils.files import atomic_torch_save, atomic_write_bytes, atomic_write_text

__all__ = ["atomic_torch_save", "atomic_write_bytes", "atomic_write_text"]

"""Result backends: the ``ResultBackend`` seam (``base``) and one engine per module."""

"""Sub-commands of ``python -m facedet``, one module each."""

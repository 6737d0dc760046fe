"""Images: the Debian base bootstrapped with mmdebstrap, and engine images on it."""

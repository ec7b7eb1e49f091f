"""Sign-offs: electronic proof of delivery, sealed and verifiable."""

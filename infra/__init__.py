"""Infrastructure: the service catalog, the Pulumi program (Docker + LocalStack) and the embedded local stack."""

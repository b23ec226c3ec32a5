"""Frame scoring models (CNN, C-VAE, random forests); class names come from the model card."""

"""Training-time data transforms: MoCo-v3 views and classification augmentations with superpixels (`augmentation`)."""

"""The paper's own architectures, for checkpoints of its reference code (google-research/nerf-from-image).

Our implementation of its triplane StyleGAN2 generator (attention colour mapping, VolSDF head) and its
SegFormer encoder, with the same parameter names as the reference checkpoints, so an imported
checkpoint loads as is; ``checkpoint`` reads those files without unpickling code and ``convert``
turns them into this project's model format. Nothing here is imported unless such a model is used.
"""

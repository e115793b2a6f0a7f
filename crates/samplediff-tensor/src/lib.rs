//! Bridge between samplediff-formats tensors and burn tensors.

import Kernels

extension SphereTrainer {
    /// Zeroes the gradients, runs forward, the four losses and backward, and leaves ∂L/∂θ in `parameters.grads`.
    func computeGradients(_ batch: TrainingBatch) -> StepLosses {
        preconditionFailure("SphereTrainer.step: the training core lands in the next commits of w/train-core")
    }
}

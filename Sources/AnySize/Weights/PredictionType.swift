/// What the model predicts (diffusers `prediction_type`).
public enum PredictionType: String, Sendable, CaseIterable {
    /// The added noise (SD 1.x, SD 2.x-base).
    case epsilon
    /// v = alpha_t * noise - sigma_t * x0 (SD 2.x-768).
    case vPrediction = "v_prediction"
}

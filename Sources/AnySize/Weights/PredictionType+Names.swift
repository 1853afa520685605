extension PredictionType {
    /// Parses a user or config spelling: `epsilon` / `eps`, `v` / `v_prediction` / `v-prediction`.
    public init?(name: String) {
        switch name.lowercased() {
        case "epsilon", "eps": self = .epsilon
        case "v", "v_prediction", "v-prediction", "vprediction": self = .vPrediction
        default: return nil
        }
    }
}

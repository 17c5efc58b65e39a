extension Duration {
    /// Whole nanoseconds: the unit of the fence keeper's clock and messages.
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}

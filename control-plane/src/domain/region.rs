//! Regions: how one is doing, as the console's region grid shows it (decided in `fleet::region_health`).

text_enum! {
    /// How a region is doing, for the console's region grid.
    pub enum RegionHealth ("region health") {
        /// Every cluster's agent is connected and nothing failed recently.
        Healthy = "healthy",
        /// Some agents are disconnected, a cluster is failed or degraded, or tasks failed recently.
        Degraded = "degraded",
        /// Clusters should be running, but no agent is connected.
        Down = "down",
        /// Clusters are being provisioned or registered; no agent is connected yet.
        Pending = "pending",
        /// No clusters.
        Empty = "empty",
        /// The region takes no new demos.
        Disabled = "disabled",
    }
}

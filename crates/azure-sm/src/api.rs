//! The api-versions azdock speaks, one per resource provider, in one place: the published
//! specifications in `../shared/azure-specs/` are for exactly these.

/// Subscriptions and resource groups (Microsoft.Resources).
pub const RESOURCES: &str = "2021-04-01";
/// Microsoft.Compute: VMs, their extensions, images.
pub const COMPUTE: &str = "2024-11-01";
/// Microsoft.Network: networks, NSGs, public IPs, NICs.
pub const NETWORK: &str = "2024-05-01";

//! Image arguments as az takes them: an alias (`Ubuntu2404`), a URN
//! (`publisher:offer:sku:version`, `latest` resolved to the newest version), or the resource id of
//! a custom or gallery image.

use serde_json::Value;

use crate::error::AzureError;
use crate::models::{CatalogueEntry, ImageReference, OsType, VirtualMachineImage, newest_version};
use crate::pipeline::Arm;

/// The api-version of the image catalogue and custom images.
use crate::api::COMPUTE as COMPUTE_API;

/// The aliases az accepts, as URNs.
pub const ALIASES: &[(&str, &str)] = &[
    ("Ubuntu2404", "Canonical:ubuntu-24_04-lts:server:latest"),
    ("Ubuntu2204", "Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest"),
    ("Debian11", "Debian:debian-11:11-backports-gen2:latest"),
    ("FlatcarLinuxFreeGen2", "kinvolk:flatcar-container-linux-free:stable-gen2:latest"),
    ("Win2022Datacenter", "MicrosoftWindowsServer:WindowsServer:2022-datacenter-g2:latest"),
    ("Win2019Datacenter", "MicrosoftWindowsServer:WindowsServer:2019-datacenter-gensecond:latest"),
];

/// An image argument, checked but not yet looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSpec {
    /// A marketplace image; `version` may be `latest`.
    Urn { publisher: String, offer: String, sku: String, version: String },
    /// A custom image, gallery image or gallery image version, by resource id.
    Id(String),
}

/// A wrong image argument, with what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid image `{0}`: give an alias ({aliases}), a URN publisher:offer:sku:version, or an image resource id",
    aliases = ALIASES.iter().map(|a| a.0).collect::<Vec<_>>().join(", ")
)]
pub struct InvalidImage(pub String);

impl ImageSpec {
    /// Parses an alias (any case), a URN or a resource id; no request is made.
    pub fn parse(text: &str) -> Result<Self, InvalidImage> {
        let text = text.trim();
        if let Some((_, urn)) = ALIASES.iter().find(|(alias, _)| alias.eq_ignore_ascii_case(text)) {
            return Self::parse(urn);
        }
        if text.starts_with('/') {
            return match crate::models::ResourceId::parse(text) {
                Some(id) if id.namespace.eq_ignore_ascii_case("Microsoft.Compute") => Ok(Self::Id(text.to_owned())),
                _ => Err(InvalidImage(text.to_owned())),
            };
        }
        let parts: Vec<&str> = text.split(':').collect();
        let valid_part = |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        match parts.as_slice() {
            [publisher, offer, sku, version] if parts.iter().all(valid_part) => Ok(Self::Urn {
                publisher: (*publisher).to_owned(),
                offer: (*offer).to_owned(),
                sku: (*sku).to_owned(),
                version: (*version).to_owned(),
            }),
            _ => Err(InvalidImage(text.to_owned())),
        }
    }
}

/// An image found in Azure: what a VM's `storageProfile.imageReference` takes, and its OS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    pub reference: ImageReference,
    /// The version `latest` stood for (marketplace images).
    pub exact_version: Option<String>,
    pub os_type: Option<OsType>,
}

/// Looks the image up in `location`: `latest` becomes the newest version (the reference keeps
/// `latest`, as az sends it, so Azure picks the same one), and the OS type is read from the
/// catalogue or the custom image.
pub async fn resolve(
    arm: &Arm,
    subscription: &str,
    location: &str,
    spec: &ImageSpec,
) -> Result<ResolvedImage, AzureError> {
    match spec {
        ImageSpec::Urn { publisher, offer, sku, version } => {
            let base = format!(
                "/subscriptions/{subscription}/providers/Microsoft.Compute/locations/{location}/publishers/{publisher}/artifacttypes/vmimage/offers/{offer}/skus/{sku}/versions"
            );
            let exact = if version.eq_ignore_ascii_case("latest") {
                let list: Vec<CatalogueEntry> =
                    parse(&base, arm.get(&format!("{base}?api-version={COMPUTE_API}")).await?)?;
                newest_version(list.iter().map(|v| v.name.as_str()))
                    .ok_or_else(|| AzureError::Arm {
                        status: 404,
                        error: crate::ArmErrorBody {
                            code: "ImageNotFound".into(),
                            message: format!("no version of {publisher}:{offer}:{sku} in {location}"),
                            target: None,
                            details: Vec::new(),
                        },
                    })?
                    .to_owned()
            } else {
                version.clone()
            };
            let url = format!("{base}/{exact}?api-version={COMPUTE_API}");
            let image: VirtualMachineImage = parse(&url, arm.get(&url).await?)?;
            Ok(ResolvedImage {
                reference: ImageReference {
                    publisher: Some(publisher.clone()),
                    offer: Some(offer.clone()),
                    sku: Some(sku.clone()),
                    version: Some(version.clone()),
                    ..ImageReference::default()
                },
                exact_version: Some(exact),
                os_type: image.properties.os_disk_image.and_then(|d| d.operating_system),
            })
        }
        ImageSpec::Id(id) => {
            let body = arm.get(&format!("{id}?api-version={COMPUTE_API}")).await?;
            // Managed images name it under storageProfile.osDisk; gallery images at the top.
            let os = body["properties"]["storageProfile"]["osDisk"]["osType"]
                .as_str()
                .or_else(|| body["properties"]["osType"].as_str())
                .and_then(OsType::from_text);
            Ok(ResolvedImage {
                reference: ImageReference { id: Some(id.clone()), ..ImageReference::default() },
                exact_version: None,
                os_type: os,
            })
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(url: &str, body: Value) -> Result<T, AzureError> {
    serde_json::from_value(body).map_err(|e| AzureError::Protocol { url: url.to_owned(), detail: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_urns_and_ids() {
        assert_eq!(
            ImageSpec::parse("ubuntu2404").unwrap(),
            ImageSpec::Urn {
                publisher: "Canonical".into(),
                offer: "ubuntu-24_04-lts".into(),
                sku: "server".into(),
                version: "latest".into()
            }
        );
        assert!(matches!(ImageSpec::parse("Debian:debian-12:12:0.20240101.1"), Ok(ImageSpec::Urn { .. })));
        let id = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/golden";
        assert_eq!(ImageSpec::parse(id).unwrap(), ImageSpec::Id(id.into()));
        for bad in ["", "Ubuntu", "a:b:c", "a:b:c:d:e", "a:b: :d", "/subscriptions/s", "a;rm:b:c:d"] {
            let e = ImageSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains("Ubuntu2404") && e.contains("publisher:offer:sku:version"), "{e}");
        }
    }
}

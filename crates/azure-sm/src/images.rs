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
    ("RHELRaw8LVMGen2", "RedHat:RHEL:8-lvm-gen2:latest"),
    ("OpenSuseLeap154Gen2", "SUSE:openSUSE-leap-15-4:gen2:latest"),
    ("SuseSles15SP3", "SUSE:sles-15-sp3:gen2:latest"),
];

/// The classic (Service Management) image families of 2014–2016, named
/// `<publisher id>__<image name>` as `azure vm image list` printed them, and the alias of the
/// nearest image Azure still offers: (publisher id, publisher, name prefix, alias).
const CLASSIC_FAMILIES: &[(&str, &str, &str, &str)] = &[
    // Ubuntu 12.04–16.04: the oldest Ubuntu LTS Azure still offers.
    ("b39f27a8b8c64d52b05eac6a62ebad85", "Canonical", "Ubuntu", "Ubuntu2204"),
    // CoreOS: Flatcar is its continuation.
    ("2b171e93f07c4903bcad35bda10acf22", "CoreOS", "CoreOS", "FlatcarLinuxFreeGen2"),
    // OpenLogic's CentOS: RHEL, which CentOS rebuilt.
    ("5112500ae3b842c8b9c604889f8753c3", "OpenLogic", "OpenLogic-CentOS", "RHELRaw8LVMGen2"),
    ("b4590d9e3ed742e4a1d46e5424aa335e", "SUSE", "openSUSE", "OpenSuseLeap154Gen2"),
    ("b4590d9e3ed742e4a1d46e5424aa335e", "SUSE", "SUSE-Linux-Enterprise-Server", "SuseSles15SP3"),
    ("b4590d9e3ed742e4a1d46e5424aa335e", "SUSE", "suse-sles", "SuseSles15SP3"),
];

/// A classic image name and the alias it stands for today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicImage {
    pub name: String,
    pub publisher: &'static str,
    pub alias: &'static str,
}

impl ClassicImage {
    /// What to tell the user: both names.
    pub fn note(&self) -> String {
        let urn = ALIASES.iter().find(|(a, _)| *a == self.alias).map_or("", |(_, u)| u);
        format!(
            "`{}` is a classic {} image Azure retired; using {} ({urn}), the nearest image Azure still offers",
            self.name, self.publisher, self.alias
        )
    }
}

/// Reads a classic image name (`<32 hex>__<name>`): `None` for any other text, an error for a
/// classic name of a family with no successor here.
pub fn classic(text: &str) -> Option<Result<ClassicImage, InvalidImage>> {
    let (id, name) = text.trim().split_once("__")?;
    if id.len() != 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) || name.is_empty() {
        return None;
    }
    let family = CLASSIC_FAMILIES.iter().find(|(fid, _, prefix, _)| {
        fid.eq_ignore_ascii_case(id) && name.to_ascii_lowercase().starts_with(&prefix.to_ascii_lowercase())
    });
    Some(match family {
        Some((_, publisher, _, alias)) => Ok(ClassicImage { name: text.trim().to_owned(), publisher, alias }),
        None => Err(InvalidImage(text.trim().to_owned())),
    })
}

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
        if let Some(classic) = classic(text) {
            return Self::parse(classic?.alias);
        }
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

    #[test]
    fn classic_image_names_map_to_the_nearest_image_still_offered() {
        let seed = "b39f27a8b8c64d52b05eac6a62ebad85__Ubuntu-14_10-amd64-server-20140729-alpha2-en-us-30GB";
        let classic_seed = classic(seed).unwrap().unwrap();
        assert_eq!((classic_seed.publisher, classic_seed.alias), ("Canonical", "Ubuntu2204"));
        let note = classic_seed.note();
        assert!(
            note.contains(seed)
                && note.contains("Ubuntu2204 (Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest)"),
            "{note}"
        );
        assert_eq!(
            ImageSpec::parse(seed).unwrap(),
            ImageSpec::parse("Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest").unwrap()
        );
        for (name, alias) in [
            ("b39f27a8b8c64d52b05eac6a62ebad85__Ubuntu-12_04_5-LTS-amd64-server-20140927-en-us-30GB", "Ubuntu2204"),
            ("B39F27A8B8C64D52B05EAC6A62EBAD85__Ubuntu-14_04_1-LTS-amd64-server-20140927-en-us-30GB", "Ubuntu2204"),
            ("2b171e93f07c4903bcad35bda10acf22__CoreOS-Stable-494.4.0", "FlatcarLinuxFreeGen2"),
            ("5112500ae3b842c8b9c604889f8753c3__OpenLogic-CentOS-70-20140926", "RHELRaw8LVMGen2"),
            ("b4590d9e3ed742e4a1d46e5424aa335e__openSUSE-13.1-v120", "OpenSuseLeap154Gen2"),
            ("b4590d9e3ed742e4a1d46e5424aa335e__SUSE-Linux-Enterprise-Server-12-v20141023", "SuseSles15SP3"),
        ] {
            assert_eq!(classic(name).unwrap().unwrap().alias, alias, "{name}");
            assert!(ImageSpec::parse(name).is_ok(), "{name}");
        }
        // A classic name of a family with no successor here is an error, not a guess.
        let windows = "a699494373c04fc0bc8f2bb1389d6106__Windows-Server-2012-R2-201409.01-en.us-127GB.vhd";
        assert_eq!(classic(windows), Some(Err(InvalidImage(windows.into()))));
        assert!(ImageSpec::parse(windows).is_err());
        let unknown_ubuntu = "b39f27a8b8c64d52b05eac6a62ebad85__Debian-7";
        assert!(classic(unknown_ubuntu).unwrap().is_err());
        // Anything else is not classic.
        for other in
            ["Ubuntu2404", "b39f27a8b8c64d52b05eac6a62ebad8__Ubuntu-14", "b39f27a8b8c64d52b05eac6a62ebad85__", "x__y"]
        {
            assert_eq!(classic(other), None, "{other}");
        }
    }

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

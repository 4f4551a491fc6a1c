//! The cloud's own locations (`GET /subscriptions/{id}/locations`), and a location as a user
//! writes it — `westus`, `West US`, `"west us"` — turned into ARM's name, as ARM itself accepts
//! display names; a typo gets the nearest name as a suggestion.

use serde::Deserialize;

use crate::error::AzureError;
use crate::models::Page;
use crate::pipeline::Arm;

/// The api-version of `Subscriptions_ListLocations` (subscriptions.json).
const SUBSCRIPTIONS: &str = "2021-01-01";

/// A region: ARM's name and the name people read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Region {
    pub name: String,
    #[serde(default)]
    pub display_name: String,
}

/// The locations of the subscription.
pub async fn list(arm: &Arm, subscription: &str) -> Result<Vec<Region>, AzureError> {
    let url = format!("/subscriptions/{subscription}/locations?api-version={SUBSCRIPTIONS}");
    let page: Page<Region> = serde_json::from_value(arm.get(&url).await?)
        .map_err(|e| AzureError::Protocol { url: url.clone(), detail: e.to_string() })?;
    Ok(page.value)
}

/// Letters and digits only, lowercased: `West US`, `westus` and `WEST us` are one place.
fn folded(text: &str) -> String {
    text.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase()
}

/// ARM's name for `given` among `regions`, or why not (naming the nearest one).
pub fn resolve(regions: &[Region], given: &str) -> Result<String, String> {
    let wanted = folded(given);
    if let Some(r) = regions.iter().find(|r| folded(&r.name) == wanted || folded(&r.display_name) == wanted) {
        return Ok(r.name.clone());
    }
    let nearest = regions
        .iter()
        .map(|r| (strsim::levenshtein(&wanted, &folded(&r.name)), r))
        .min_by_key(|(distance, _)| *distance)
        .filter(|(distance, _)| *distance <= 3);
    Err(match nearest {
        Some((_, r)) => format!(
            "location `{given}` is not one of this cloud's {} locations; did you mean `{}` ({})?",
            regions.len(),
            r.name,
            r.display_name
        ),
        None => format!(
            "location `{given}` is not one of this cloud's {} locations (by name or display name, such as westus or \"West US\"); `azdock account list-locations` lists them",
            regions.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions() -> Vec<Region> {
        [("westus", "West US"), ("westus2", "West US 2"), ("uksouth", "UK South"), ("westeurope", "West Europe")]
            .map(|(n, d)| Region { name: n.into(), display_name: d.into() })
            .to_vec()
    }

    #[test]
    fn names_and_display_names_are_one_place() {
        for given in ["westus", "West US", "west us", "WESTUS", " West  US "] {
            assert_eq!(resolve(&regions(), given).as_deref(), Ok("westus"), "{given}");
        }
        assert_eq!(resolve(&regions(), "West US 2").as_deref(), Ok("westus2"));
        // A custom cloud's region whose display name is not its name spelt out.
        let stack = [Region { name: "local1".into(), display_name: "Contoso Stack".into() }];
        assert_eq!(resolve(&stack, "Contoso Stack").as_deref(), Ok("local1"));
        assert_eq!(resolve(&stack, "LOCAL1").as_deref(), Ok("local1"));
        assert_eq!(resolve(&regions(), "UK South").as_deref(), Ok("uksouth"));
    }

    #[test]
    fn a_typo_gets_the_nearest_name_and_nonsense_gets_the_way_to_list_them() {
        let e = resolve(&regions(), "Wset US").unwrap_err();
        assert!(
            e.contains("`Wset US`") && e.contains("did you mean `westus` (West US)") && e.contains("4 locations"),
            "{e}"
        );
        let e = resolve(&regions(), "atlantis").unwrap_err();
        assert!(e.contains("`atlantis`") && !e.contains("did you mean") && e.contains("list-locations"), "{e}");
    }
}

//! The Defender for Endpoint clouds: each one's API base, sign-in authority and token scope.

use serde::Deserialize;
use std::fmt;

/// Where a tenant lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cloud {
    /// Worldwide commercial: `https://api.security.microsoft.com`.
    Commercial,
    /// Commercial, United States region.
    Us,
    /// Commercial, European Union region.
    Eu,
    /// Commercial, United Kingdom region.
    Uk,
    /// Commercial, Australia region.
    Au,
    /// Commercial, Switzerland region.
    Swa,
    /// Commercial, India region.
    Ina,
    /// US Government Community Cloud.
    Gcc,
    /// US Government Community Cloud High.
    GccHigh,
    /// US Department of Defense.
    Dod,
    /// Explicit URLs, given in the tenant's configuration.
    Custom,
}

const COMMERCIAL_AUTHORITY: &str = "https://login.microsoftonline.com";
const US_GOV_AUTHORITY: &str = "https://login.microsoftonline.us";
const COMMERCIAL_RESOURCE: &str = "https://api.securitycenter.microsoft.com";
const GCC_API: &str = "https://api-gcc.securitycenter.microsoft.us";
const GOV_API: &str = "https://api-gov.securitycenter.microsoft.us";

impl Cloud {
    /// The API base URL; `None` for [`Cloud::Custom`].
    pub fn api_base(self) -> Option<&'static str> {
        Some(match self {
            Cloud::Commercial => "https://api.security.microsoft.com",
            Cloud::Us => "https://us.api.security.microsoft.com",
            Cloud::Eu => "https://eu.api.security.microsoft.com",
            Cloud::Uk => "https://uk.api.security.microsoft.com",
            Cloud::Au => "https://au.api.security.microsoft.com",
            Cloud::Swa => "https://swa.api.security.microsoft.com",
            Cloud::Ina => "https://ina.api.security.microsoft.com",
            Cloud::Gcc => GCC_API,
            Cloud::GccHigh | Cloud::Dod => GOV_API,
            Cloud::Custom => return None,
        })
    }

    /// The sign-in authority; `None` for [`Cloud::Custom`].
    pub fn authority(self) -> Option<&'static str> {
        match self {
            Cloud::GccHigh | Cloud::Dod => Some(US_GOV_AUTHORITY),
            Cloud::Custom => None,
            _ => Some(COMMERCIAL_AUTHORITY),
        }
    }

    /// The default OAuth scope. Microsoft's samples use the commercial resource for every
    /// commercial region; for the US Government clouds, which Microsoft does not document,
    /// integrations use the API base itself (configurable per tenant).
    pub fn default_scope(self) -> Option<String> {
        match self {
            Cloud::Gcc => Some(format!("{GCC_API}/.default")),
            Cloud::GccHigh | Cloud::Dod => Some(format!("{GOV_API}/.default")),
            Cloud::Custom => None,
            _ => Some(format!("{COMMERCIAL_RESOURCE}/.default")),
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Cloud::Commercial => "commercial",
            Cloud::Us => "us",
            Cloud::Eu => "eu",
            Cloud::Uk => "uk",
            Cloud::Au => "au",
            Cloud::Swa => "swa",
            Cloud::Ina => "ina",
            Cloud::Gcc => "gcc",
            Cloud::GccHigh => "gcc-high",
            Cloud::Dod => "dod",
            Cloud::Custom => "custom",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::ApiOrigin;

    const ALL: [Cloud; 10] = [
        Cloud::Commercial,
        Cloud::Us,
        Cloud::Eu,
        Cloud::Uk,
        Cloud::Au,
        Cloud::Swa,
        Cloud::Ina,
        Cloud::Gcc,
        Cloud::GccHigh,
        Cloud::Dod,
    ];

    #[test]
    fn every_cloud_has_https_urls_and_a_scope() {
        for cloud in ALL {
            assert!(
                ApiOrigin::parse(cloud.api_base().unwrap()).is_ok(),
                "{cloud}"
            );
            assert!(
                ApiOrigin::parse(cloud.authority().unwrap()).is_ok(),
                "{cloud}"
            );
            assert!(
                cloud.default_scope().unwrap().ends_with("/.default"),
                "{cloud}"
            );
        }
        assert_eq!(Cloud::Custom.api_base(), None);
    }

    #[test]
    fn us_government_clouds_sign_in_where_they_should() {
        assert_eq!(
            Cloud::GccHigh.authority(),
            Some("https://login.microsoftonline.us")
        );
        assert_eq!(
            Cloud::Dod.api_base(),
            Some("https://api-gov.securitycenter.microsoft.us")
        );
        assert_eq!(
            Cloud::Gcc.authority(),
            Some("https://login.microsoftonline.com")
        );
        assert_eq!(
            Cloud::Gcc.api_base(),
            Some("https://api-gcc.securitycenter.microsoft.us")
        );
        assert_eq!(
            Cloud::Eu.api_base(),
            Some("https://eu.api.security.microsoft.com")
        );
    }
}

//! The Defender for Endpoint clouds: each one's API base, sign-in authority and token scope.
//!
//! Where each value comes from:
//! - the commercial API base and its regional hosts (`us`, `eu`, `uk`, `au`, `swa`, `ina`,
//!   `aea`): "Access the Microsoft Defender for Endpoint APIs" (learn.microsoft.com/
//!   defender-endpoint/api/exposed-apis-list), whose current version lists `aea` too;
//! - the commercial scope `https://api.securitycenter.microsoft.com/.default`: the same page's
//!   application-context samples;
//! - the US Government API bases and sign-in hosts: "Microsoft Defender for Endpoint for US
//!   Government customers" (learn.microsoft.com/defender-endpoint/gov), API section: GCC signs
//!   in at `login.microsoftonline.com`, GCC High and DoD at `login.microsoftonline.us`;
//! - the US Government scopes, which Microsoft does not document: what Cortex XSOAR's Defender
//!   for Endpoint integration ships (demisto/content, MicrosoftDefenderAdvancedThreatProtection:
//!   `https://securitycenter.onmicrosoft.com/windowsatpservice/.default` for GCC, verified with
//!   a customer, and `https://securitycenter.onmicrosoft.us/windowsatpservice/.default` for GCC
//!   High and DoD). A tenant may set its own `scope`.

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
    /// Commercial, Australia East region (listed on Microsoft's newer pages).
    Aea,
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
const COMMERCIAL_SCOPE: &str = "https://api.securitycenter.microsoft.com/.default";
const GCC_SCOPE: &str = "https://securitycenter.onmicrosoft.com/windowsatpservice/.default";
const GOV_SCOPE: &str = "https://securitycenter.onmicrosoft.us/windowsatpservice/.default";
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
            Cloud::Aea => "https://aea.api.security.microsoft.com",
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

    /// The default OAuth scope: Microsoft's for every commercial region; for the US
    /// Government clouds, which Microsoft does not document, Cortex XSOAR's (a tenant may set
    /// its own). `None` for [`Cloud::Custom`], which must name one.
    pub fn default_scope(self) -> Option<String> {
        let scope = match self {
            Cloud::Gcc => GCC_SCOPE,
            Cloud::GccHigh | Cloud::Dod => GOV_SCOPE,
            Cloud::Custom => return None,
            _ => COMMERCIAL_SCOPE,
        };
        Some(scope.to_owned())
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
            Cloud::Aea => "aea",
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
    use crate::outbound::ApiOrigin;

    const ALL: [Cloud; 11] = [
        Cloud::Commercial,
        Cloud::Us,
        Cloud::Eu,
        Cloud::Uk,
        Cloud::Au,
        Cloud::Swa,
        Cloud::Ina,
        Cloud::Aea,
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
        assert_eq!(
            Cloud::Aea.api_base(),
            Some("https://aea.api.security.microsoft.com")
        );
    }

    #[test]
    fn us_government_scopes_are_the_ones_shipping_integrations_use() {
        let scope = |cloud: Cloud| cloud.default_scope().unwrap();
        assert_eq!(
            scope(Cloud::Gcc),
            "https://securitycenter.onmicrosoft.com/windowsatpservice/.default"
        );
        assert_eq!(
            scope(Cloud::GccHigh),
            "https://securitycenter.onmicrosoft.us/windowsatpservice/.default"
        );
        assert_eq!(scope(Cloud::Dod), scope(Cloud::GccHigh));
        assert_eq!(
            scope(Cloud::Aea),
            "https://api.securitycenter.microsoft.com/.default"
        );
        assert_eq!(Cloud::Custom.default_scope(), None);
    }
}

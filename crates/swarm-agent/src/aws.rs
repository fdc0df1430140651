//! What every AWS client of the agent shares: the SDK's default credential
//! chain (on a node, its instance role) and the region, given or discovered.

/// The shared SDK configuration, in `region` when given.
pub async fn sdk_config(region: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_string()));
    }
    loader.load().await
}

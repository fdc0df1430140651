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

/// An STS client in `region`, at `endpoint` when given (a test's stand-in):
/// the backup role the agent relays (credentials_relay.rs).
pub async fn sts_client(region: Option<&str>, endpoint: Option<&str>) -> aws_sdk_sts::Client {
    let shared = sdk_config(region).await;
    let mut conf = aws_sdk_sts::config::Builder::from(&shared);
    if let Some(url) = endpoint {
        conf = conf.endpoint_url(url);
    }
    aws_sdk_sts::Client::from_conf(conf.build())
}

/// An Auto Scaling client in `region`, at `endpoint` when given (a test's
/// stand-in): the lifecycle hook and the node's health report share it.
pub async fn autoscaling_client(
    region: Option<&str>,
    endpoint: Option<&str>,
) -> aws_sdk_autoscaling::Client {
    let shared = sdk_config(region).await;
    let mut conf = aws_sdk_autoscaling::config::Builder::from(&shared);
    if let Some(url) = endpoint {
        conf = conf.endpoint_url(url);
    }
    aws_sdk_autoscaling::Client::from_conf(conf.build())
}

//! aws-sdk-s3 against `s3-server`: object operations, conditional puts, presigned URLs, signature checks.

mod support;

use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

/// Keys in `bucket` under `prefix`, in the order S3 lists them (sorted).
async fn keys(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> anyhow::Result<Vec<String>> {
    let listing = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await?;
    Ok(listing
        .contents()
        .iter()
        .filter_map(|object| object.key().map(str::to_owned))
        .collect())
}

async fn body(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> anyhow::Result<Vec<u8>> {
    let object = client.get_object().bucket(bucket).key(key).send().await?;
    Ok(object.body.collect().await?.to_vec())
}

#[tokio::test]
async fn objects_can_be_put_read_listed_and_deleted() -> anyhow::Result<()> {
    let client = support::client();
    let bucket = harness::s3().create_bucket("round-trip");
    for (key, text) in [
        ("plans/cluster-1.tfplan", "plan one"),
        ("plans/cluster-2.tfplan", "plan two"),
        ("logs/export.jsonl", "{}\n"),
    ] {
        client
            .put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from_static(text.as_bytes()))
            .send()
            .await?;
    }
    assert_eq!(
        body(&client, &bucket, "plans/cluster-2.tfplan").await?,
        b"plan two"
    );
    assert_eq!(
        keys(&client, &bucket, "plans/").await?,
        ["plans/cluster-1.tfplan", "plans/cluster-2.tfplan"]
    );
    assert_eq!(keys(&client, &bucket, "").await?.len(), 3);

    client
        .delete_object()
        .bucket(&bucket)
        .key("plans/cluster-1.tfplan")
        .send()
        .await?;
    assert_eq!(
        keys(&client, &bucket, "plans/").await?,
        ["plans/cluster-2.tfplan"]
    );
    let error = client
        .get_object()
        .bucket(&bucket)
        .key("plans/cluster-1.tfplan")
        .send()
        .await
        .expect_err("the object was deleted");
    assert_eq!(error.code(), Some("NoSuchKey"), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn a_put_with_if_none_match_star_does_not_overwrite() -> anyhow::Result<()> {
    let client = support::client();
    let bucket = harness::s3().create_bucket("conditional");
    let put_if_absent = |text: &'static str| {
        client
            .put_object()
            .bucket(&bucket)
            .key("state.tflock")
            .if_none_match("*")
            .body(ByteStream::from_static(text.as_bytes()))
            .send()
    };
    put_if_absent("first holder").await?;
    let error = put_if_absent("second holder")
        .await
        .expect_err("the object exists");
    let status = error
        .raw_response()
        .map(|response| response.status().as_u16());
    assert_eq!(status, Some(412), "{error:?}");
    assert_eq!(error.code(), Some("PreconditionFailed"), "{error:?}");
    assert_eq!(
        body(&client, &bucket, "state.tflock").await?,
        b"first holder"
    );
    Ok(())
}

#[tokio::test]
async fn a_presigned_get_needs_no_credentials() -> anyhow::Result<()> {
    let client = support::client();
    let bucket = harness::s3().create_bucket("presigned");
    client
        .put_object()
        .bucket(&bucket)
        .key("artifacts/build context.tar")
        .body(ByteStream::from_static(b"tarball"))
        .send()
        .await?;
    let presigned = client
        .get_object()
        .bucket(&bucket)
        .key("artifacts/build context.tar")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300))?)
        .await?;
    let mut response = ureq::get(presigned.uri()).call()?;
    assert_eq!(response.body_mut().read_to_string()?, "tarball");
    Ok(())
}

#[tokio::test]
async fn requests_without_a_valid_signature_are_refused() -> anyhow::Result<()> {
    let s3 = harness::s3();
    let bucket = s3.create_bucket("signatures");
    support::client()
        .put_object()
        .bucket(&bucket)
        .key("secret")
        .body(ByteStream::from_static(b"data"))
        .send()
        .await?;

    let unsigned = ureq::get(format!("{}/{bucket}/secret", s3.endpoint()))
        .config()
        .http_status_as_error(false)
        .build()
        .call()?;
    assert_eq!(unsigned.status().as_u16(), 403);

    let error = support::client_with_secret_key("not-the-secret-key")
        .get_object()
        .bucket(&bucket)
        .key("secret")
        .send()
        .await
        .expect_err("the signature does not match");
    assert_eq!(error.code(), Some("SignatureDoesNotMatch"), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn harness_buckets_are_fresh_and_clients_can_create_more() -> anyhow::Result<()> {
    let client = support::client();
    let s3 = harness::s3();
    let first = s3.create_bucket("Fresh Bucket");
    let second = s3.create_bucket("Fresh Bucket");
    assert_ne!(first, second);
    assert!(first.starts_with("fresh-bucket-"), "{first}");
    assert!(keys(&client, &first, "").await?.is_empty());

    client
        .create_bucket()
        .bucket("made-by-a-client")
        .send()
        .await?;
    let buckets = client.list_buckets().send().await?;
    let names: Vec<&str> = buckets
        .buckets()
        .iter()
        .filter_map(|bucket| bucket.name())
        .collect();
    for name in [first.as_str(), &second, "made-by-a-client"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    Ok(())
}

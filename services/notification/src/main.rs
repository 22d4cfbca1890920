#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = nivesh_runtime::config::load::<nivesh_notification::Config>("notification")?;
    nivesh_notification::run(settings).await?;
    Ok(())
}

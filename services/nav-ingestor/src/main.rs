#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = nivesh_runtime::config::load::<nivesh_nav_ingestor::Config>("nav-ingestor")?;
    nivesh_nav_ingestor::run(settings).await?;
    Ok(())
}

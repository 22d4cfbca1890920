#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = nivesh_runtime::config::load::<nivesh_nav_publisher::Config>("nav-publisher")?;
    nivesh_nav_publisher::run(settings).await?;
    Ok(())
}

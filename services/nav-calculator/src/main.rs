#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = nivesh_runtime::config::load::<nivesh_nav_calculator::Config>("nav-calculator")?;
    nivesh_nav_calculator::run(settings).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = nivesh_runtime::config::load::<nivesh_portfolio::Config>("portfolio")?;
    nivesh_portfolio::run(settings).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = nivesh_runtime::config::load::<nivesh_order::Config>("order")?;
    nivesh_order::run(settings).await?;
    Ok(())
}

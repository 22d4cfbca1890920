#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = nivesh_runtime::config::load::<nivesh_compliance::Config>("compliance")?;
    nivesh_compliance::run(settings).await?;
    Ok(())
}

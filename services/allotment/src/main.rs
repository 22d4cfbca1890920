#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = nivesh_runtime::config::load::<nivesh_allotment::Config>("allotment")?;
    nivesh_allotment::run(settings).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = nivesh_runtime::config::load::<nivesh_onboarding::Config>("onboarding")?;
    nivesh_onboarding::run(settings).await?;
    Ok(())
}

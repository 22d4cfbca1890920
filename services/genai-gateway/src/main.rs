#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = nivesh_runtime::config::load::<nivesh_genai_gateway::Config>("genai-gateway")?;
    nivesh_genai_gateway::run(settings).await?;
    Ok(())
}

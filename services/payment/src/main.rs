#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = nivesh_runtime::config::load::<nivesh_payment::Config>("payment")?;
    nivesh_payment::run(settings).await?;
    Ok(())
}

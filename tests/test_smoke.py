async def test_nested_appointment_query_returns_demo_data(client, demo):
    data = await client.data(
        """{ appointments(first: 5, status: COMPLETED) {
              totalCount
              nodes { status patient { name } doctor { name } bill { totalCost } } } }"""
    )
    appointments = data["appointments"]
    assert appointments["totalCount"] > 5
    assert len(appointments["nodes"]) == 5
    for node in appointments["nodes"]:
        assert node["status"] == "COMPLETED"
        assert node["patient"]["name"] and node["doctor"]["name"]
        assert node["bill"] is not None  # every completed demo appointment is billed


async def test_health_reports_every_store(app):
    import httpx

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"mongodb": "ok", "sql": "ok", "redis": "ok"}

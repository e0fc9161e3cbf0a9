def test_token_then_protected_call(make_client, token_for, client):
    application, secret = make_client("svc", scopes=["reports:read"])
    body = token_for(application, secret, scope="reports:read")
    response = client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert response.status_code == 200
    assert response.json() == {"ok": True}

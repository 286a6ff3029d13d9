from tests.conftest import GraphQLClient


async def test_create_model_and_version(gql: GraphQLClient) -> None:
    await gql.ok('mutation { createModel(input: {name: "m"}) { name } }')
    data = await gql.ok('mutation { createVersion(input: {model: "m", params: [{key: "lr", value: 0.1}]}) { ref } }')
    assert data["createVersion"]["ref"] == "m:1"

"""Security tests reuse the rooms' fixtures (rooms of alice's, carol) and the API's (signed-in
clients, the error shape)."""

from tests.api.conftest import (  # noqa: F401
    admin_api,
    alice_api,
    bob_api,
    error_of,
    pages_render_without_collectstatic,
)
from tests.collab.conftest import carol, make_room, media, write_chunk  # noqa: F401
from tests.collab.test_protocol import a_public_room  # noqa: F401

"""Keep the public response cache honest for every save and delete of a song, whoever makes it
(services, the admin, a shell). Queryset updates bypass signals; services that use them call
public_content_changed themselves. This is cache invalidation only: no business logic here."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from webapp.public_cache import public_content_changed
from webapp.songs.models import Song


@receiver(post_save, sender=Song)
@receiver(post_delete, sender=Song)
def song_changed(sender, **kwargs) -> None:
    transaction.on_commit(public_content_changed)

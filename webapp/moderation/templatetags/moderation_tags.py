"""`{% load moderation_tags %}`: `user|is_moderator` (base.html shows moderators their link)."""

from django import template

from webapp.moderation.permissions import user_is_moderator

register = template.Library()


@register.filter
def is_moderator(user) -> bool:
    return user_is_moderator(user)

# Users are administered through django.contrib.auth's UserAdmin (registered by Django itself);
# API tokens through rest_framework.authtoken's TokenAdmin.

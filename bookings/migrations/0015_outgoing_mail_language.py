"""A mail remembers the language the buyer read the site in when it became owed (bookings.services.mail)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('bookings', '0014_client_cap_waits_for_one_stripe'),
    ]

    operations = [
        migrations.AddField(
            model_name='outgoingmail',
            name='language',
            field=models.CharField(default='en', max_length=8),
        ),
    ]

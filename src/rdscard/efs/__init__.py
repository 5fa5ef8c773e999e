"""Card-bound file encryption: kernel fscrypt keys wrapped in CMS for the user's card."""

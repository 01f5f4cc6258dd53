"""Deployment: SavedModel signatures and export, the op check, the serving client, CTranslate2 export."""
